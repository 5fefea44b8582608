"""The RAM++ web demo as a Hugging Face Space (Gradio SDK): `hub_upload/prepare_and_push.py --space SPACE_ID` stages
this file with the model repository's id filled in, a requirements.txt and the Space card.

Locally: `RAMPLUS_MODEL=path/or/hub-id python app.py` (the same demo as `ramplus demo`).
"""

import os

from transformers_ramplus.serving.demo import TaggingDemo, build_demo


MODEL = os.environ.get("RAMPLUS_MODEL", "__RAMPLUS_MODEL_REPO__")  # the staging tool writes the model repository here

demo = build_demo(TaggingDemo(MODEL), title="RAM++ image tagging")

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=1).launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"))
