"""GPU smoke check for transformers-ramplus, run on a one-GPU machine by the lead (not part of the test suite).

Checks: the golden tiny checkpoint's logits on CUDA (fp32, bf16) against the authors' reference; `ramplus tag
--device cuda` equals the CPU run; tag_dataset on CUDA equals CPU; full-size throughput fp32/bf16 at batch 1/8/32.
"""
import json, os, subprocess, sys, time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "modeling_tests"))
OUT = Path(os.environ.get("OUT", "/tmp/gpu_out"))
OUT.mkdir(parents=True, exist_ok=True)
report = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}

def log(key, value):
    report[key] = value
    print(key, value, flush=True)
    (OUT / "gpu_report.json").write_text(json.dumps(report, indent=1, default=str))

from conftest import convert_golden_tiny, REFERENCE_IMAGES, TINY_DIR  # noqa: E402
import transformers_ramplus  # noqa: E402,F401
from transformers_ramplus import RamPlusModel, RamPlusProcessor  # noqa: E402

tiny = convert_golden_tiny(Path("/tmp/ramplus_tiny"))
ref = torch.load(TINY_DIR / "reference_outputs.pt", map_location="cpu") if (TINY_DIR / "reference_outputs.pt").exists() else None
log("reference_keys", sorted(ref) if isinstance(ref, dict) else type(ref).__name__)

def check(name, fn):
    try:
        log(name, fn())
    except Exception as error:  # noqa: BLE001 - a smoke report records every failure and goes on
        import traceback
        log(name, f"FAILED: {type(error).__name__}: {error}\n{traceback.format_exc()[-1500:]}")

cuda = torch.device(os.environ.get("DEVICE", "cuda"))

def golden():
    out = {}
    for precision in ("fp32", "bf16"):
        model = RamPlusModel.from_pretrained(tiny).eval()
        model = transformers_ramplus.enable_fast_inference(model.to(cuda), precision=precision)
        with torch.no_grad():
            logits = model(pixel_values=ref["pixel_values"].to(cuda)).logits.float().cpu()
        diff = (logits - ref["logits"]).abs().max().item()
        agree = ((logits > 0) == (ref["logits"] > 0)).float().mean().item()
        out[precision] = {"max_abs_diff": diff, "sign_agreement": agree}
    model = RamPlusModel.from_pretrained(tiny).eval().to(cuda)
    with torch.no_grad():
        logits = model(pixel_values=ref["pixel_values"].to(cuda)).logits.cpu()
    out["reference_model_fp32"] = {"max_abs_diff": (logits - ref["logits"]).abs().max().item()}
    try:
        transformers_ramplus.enable_fast_inference(RamPlusModel.from_pretrained(tiny).to(cuda), precision="int8")
        out["int8_on_cuda"] = "accepted"
    except Exception as error:  # noqa: BLE001
        out["int8_on_cuda"] = f"{type(error).__name__}: {error}"
    return out

check("golden_tiny_on_cuda", golden)

images = Path("/tmp/gpu_images"); images.mkdir(exist_ok=True)
from PIL import Image  # noqa: E402
for index in range(12):
    Image.open(REFERENCE_IMAGES[index % 2]).rotate(index * 7).save(images / f"img{index:02d}.jpg")
Image.new("RGB", (1, 1)).save(images / "zz_tiny.png")
(images / "broken.jpg").write_bytes(b"not an image")

def cli_tag():
    env = dict(os.environ)
    results = {}
    for device in ("cpu", str(cuda)):
        target = Path(f"/tmp/tags_{device}.jsonl")
        proc = subprocess.run([sys.executable, "-m", "transformers_ramplus.cli.main", "tag", str(images), "--model", str(tiny),
                               "--output", str(target), "--device", device, "--overwrite"], capture_output=True, text=True, env=env, timeout=300)
        results[device] = {"rc": proc.returncode, "stderr_tail": proc.stderr[-600:]}
    a = Path("/tmp/tags_cpu.jsonl").read_text().splitlines() if Path("/tmp/tags_cpu.jsonl").exists() else []
    b = Path(f"/tmp/tags_{cuda}.jsonl").read_text().splitlines() if Path(f"/tmp/tags_{cuda}.jsonl").exists() else []
    ta = [json.loads(l).get("tags") for l in a]; tb = [json.loads(l).get("tags") for l in b]
    results["records"] = [len(a), len(b)]
    results["same_tags"] = ta == tb
    return results

check("ramplus_tag_cpu_vs_cuda", cli_tag)

def sharded():
    target = Path("/tmp/tags_sharded.jsonl")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", "0", "-m",
           "transformers_ramplus.cli.main", "tag", str(images), "--model", str(tiny), "--output", str(target), "--overwrite"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    lines = target.read_text().splitlines() if target.exists() else []
    single = Path(f"/tmp/tags_{cuda}.jsonl").read_text().splitlines() if Path(f"/tmp/tags_{cuda}.jsonl").exists() else []
    return {"rc": proc.returncode, "records": len(lines), "same_as_single": [json.loads(l).get("tags") for l in lines] == [json.loads(l).get("tags") for l in single], "stderr_tail": proc.stderr[-800:]}

check("accelerate_launch_2_processes_1_gpu", sharded)

def dataset_check():
    import datasets
    from transformers_ramplus import tag_dataset
    files = sorted(str(p) for p in images.glob("img*.jpg"))
    ds = datasets.Dataset.from_dict({"image": files}).cast_column("image", datasets.Image())
    on_cuda = tag_dataset(ds, model=str(tiny), device=str(cuda), batch_size=4)
    on_cpu = tag_dataset(ds, model=str(tiny), device="cpu", batch_size=4)
    return {"rows": len(on_cuda), "same_tags": on_cuda["tags"] == on_cpu["tags"],
            "max_score_diff": max(abs(a - b) for x, y in zip(on_cuda["scores"], on_cpu["scores"]) for a, b in zip(x, y)) if on_cuda["scores"] else None}

check("tag_dataset_cuda_vs_cpu", dataset_check)

def full_size():
    from transformers_ramplus import RamPlusConfig
    config = RamPlusConfig(hidden_size=768, num_attention_heads=4, intermediate_size=3072, text_embed_dim=512,
                           descriptions_per_tag=51, id2label={i: f"tag_{i}" for i in range(4585)})
    with torch.device(cuda):
        model = RamPlusModel(config).eval()
    out = {"parameters_M": sum(p.numel() for p in model.parameters()) / 1e6}
    pixel = torch.randn(32, 3, 384, 384, device=cuda)
    for precision in ("fp32", "bf16"):
        fast = transformers_ramplus.enable_fast_inference(model, precision=precision)
        for batch in (1, 8, 32):
            x = pixel[:batch]
            with torch.no_grad():
                for _ in range(3):
                    fast(pixel_values=x)
                torch.cuda.synchronize(); start = time.perf_counter(); n = 10
                for _ in range(n):
                    fast(pixel_values=x)
                torch.cuda.synchronize()
            elapsed = (time.perf_counter() - start) / n
            out[f"{precision}_b{batch}"] = {"ms_per_batch": round(elapsed * 1000, 2), "images_per_s": round(batch / elapsed, 1)}
        torch.cuda.reset_peak_memory_stats()
    out["peak_mem_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out

if os.environ.get("FULL", "1") == "1":
    check("full_size_throughput", full_size)
print(json.dumps(report, indent=1, default=str)[:6000])
