#!/usr/bin/env python
"""The compute study on the embedded data (same as ``glm-hf study``): objective x pretraining budget x fine-tuning
seeds, each checkpoint and a random initialisation fine-tuned with one protocol, against TF-IDF on the same split.

    python recipes/study.py --output_dir runs/study                  # every objective, budgets 300,900,1800
    python recipes/study.py --objectives rtd,mlm --budgets 500,1000  # a part of it; reruns skip finished cells
    python recipes/study.py --output_dir runs/study-1800 --objectives mlm --budgets 1200,1800 --compare_with runs/study
    python recipes/study.py --quick --output_dir runs/study_quick    # smoke test: tiny models, a few steps

Writes study.json (every cell) and study.png (test accuracy vs pretraining FLOPs); with --compare_with also
study-compared.png. All options: --help; the logic lives in glm_hf/study.py.
"""

import sys

from glm_hf.study import main

if __name__ == "__main__":
    sys.exit(main())
