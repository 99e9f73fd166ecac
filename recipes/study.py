#!/usr/bin/env python
"""The compute study on the embedded data (same as ``glm-hf study``): objective x pretraining budget x fine-tuning
seeds, each checkpoint and a random initialisation fine-tuned with one protocol, against TF-IDF on the same split.

    python recipes/study.py --output_dir runs/study                  # every objective, budgets 750,1500,3000
    python recipes/study.py --objectives rtd,mlm --budgets 500,1000  # a part of it; reruns skip finished cells
    python recipes/study.py --quick --output_dir runs/study_quick    # smoke test: tiny models, a few steps

Writes study.json (every cell) and study.png (test accuracy vs pretraining FLOPs). All options: --help; the logic
lives in glm_hf/study.py.
"""

import sys

from glm_hf.study import main

if __name__ == "__main__":
    sys.exit(main())
