#!/usr/bin/env python
"""Fine-tune one GLM encoder on sentiment classification and NER together (task-sampled batches).

Example:

    python recipes/finetune_multitask.py --model_name_or_path runs/main/pretrain \
        --classification_dataset embedded-sentiment --ner_dataset msra --task_sampling_temperature 1 \
        --do_train --max_steps 2000 --per_device_train_batch_size 32 --learning_rate 5e-4 \
        --output_dir runs/multitask

Each task is exported as an ordinary folder (runs/multitask/sentiment_model, runs/multitask/ner_model) that
from_pretrained and pipelines load. All options: python recipes/finetune_multitask.py --help (the logic lives in
glm_hf/multitask.py).
"""

from glm_hf.multitask import main

if __name__ == "__main__":
    main()
