# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""RAM++ tagging metrics as a local `evaluate` module: mAP, CP, CR, CF1, OP, OR, OF1 (the paper's protocol).

    import evaluate
    metric = evaluate.load("src/transformers_ramplus/training/evaluate_metric/ramplus_tagging")   # a local path: works offline
    metric.compute(predictions=scores, references=targets, threshold=0.5)

The numbers come from `transformers_ramplus.training.metrics` (one implementation).
"""

import datasets
import evaluate
import numpy as np

from transformers_ramplus.training.metrics import compute_metrics


_DESCRIPTION = """Multi-label image tagging metrics as in the RAM++ paper: per-class average precision (precision
averaged at each positive, denominator positives + 1e-8) and its mean (mAP); per-class precision and recall of
thresholded scores (eps 1e-9) macro-averaged (CP, CR) with CF1 = 2 CP CR / (CP + CR); and overall (micro) OP, OR,
OF1."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): per image, the score (probability) of every class.
    references (`list` of `list` of `int`): per image, the multi-hot targets of every class.
    threshold (`float` or `list` of `float`, defaults to 0.5): a class is predicted when its score is > threshold.
Returns:
    `dict` with `mAP`, `CP`, `CR`, `CF1`, `OP`, `OR`, `OF1` (fractions in [0, 1]).
Example:
    >>> metric = evaluate.load("src/transformers_ramplus/training/evaluate_metric/ramplus_tagging")
    >>> metric.compute(predictions=[[0.9, 0.2], [0.3, 0.8]], references=[[1, 0], [0, 1]])["mAP"]
    1.0
"""

_CITATION = """@article{huang2023open,
  title={Open-Set Image Tagging with Multi-Grained Text Supervision},
  author={Huang, Xinyu and Huang, Yi-Jie and Zhang, Youcai and Tian, Weiwei and Feng, Rui and Zhang, Yuejie and
          Xie, Yanchun and Li, Yaqian and Zhang, Lei},
  journal={arXiv preprint arXiv:2310.15200},
  year={2023}
}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RamplusTagging(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            ),
        )

    def _compute(self, predictions, references, threshold=0.5):
        scores = np.asarray(predictions, dtype=np.float64)
        targets = np.asarray(references, dtype=np.int64)
        return {name: float(value) for name, value in compute_metrics(scores, targets, threshold).items()}
