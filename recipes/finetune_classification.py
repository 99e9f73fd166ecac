#!/usr/bin/env python
"""Fine-tune GLM for text classification or regression (like transformers' run_classification.py).

Examples:

    # the embedded Chinese sentiment task, from a pretraining folder
    python recipes/finetune_classification.py --model_name_or_path runs/main/pretrain \
        --dataset_name embedded-sentiment --do_train --do_eval --do_predict \
        --max_seq_length 128 --per_device_train_batch_size 32 --learning_rate 1e-4 --num_train_epochs 2 \
        --output_dir runs/sentiment

    # any CSV with a text and a label column
    python recipes/finetune_classification.py --model_name_or_path runs/main/pretrain \
        --train_file reviews.csv --text_column_names review --label_column_name sentiment \
        --do_train --do_eval --do_predict --output_dir runs/reviews

All options: python recipes/finetune_classification.py --help (the logic lives in glm_hf/finetuning.py).
"""

from glm_hf.finetuning import main

if __name__ == "__main__":
    main()
