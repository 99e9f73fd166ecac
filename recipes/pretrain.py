"""Pretraining of GLM (--objective mlm_nsp, mlm_sop, mlm or rtd); the logic and every flag live in glm_hf.pretraining.

    python recipes/pretrain.py --tokenizer_name TOK --dataset_name embedded --model_size mini \
        --max_steps 1000 --output_dir OUT            # plus any TrainingArguments flag

    accelerate launch --config_file recipes/accelerate/ddp.yaml recipes/pretrain.py ...
    torchrun --nproc_per_node 2 recipes/pretrain.py ... --use_cpu     # CPU processes, gloo
"""

from glm_hf.pretraining import main

if __name__ == "__main__":
    main()
