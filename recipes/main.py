#!/usr/bin/env python
"""The main job on the embedded data, end to end (same as ``glm-hf main``).

    python recipes/main.py                 # default budget (README: measured time), in runs/main
    python recipes/main.py --quick         # smoke test, in runs/main_quick

Interrupt it and run the same command again: finished stages are skipped, an interrupted one resumes.
All options: python recipes/main.py --help (the logic lives in glm_hf/main_job.py).
"""

import sys

from glm_hf.main_job import main

if __name__ == "__main__":
    sys.exit(main())
