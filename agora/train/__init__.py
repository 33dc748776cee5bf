"""Student training, as a library: `student` materialises the base student as a local Hugging Face folder, `data`
turns instruction/response rows into loss-masked tensors (packed or padded), `sft` runs the full fine-tune with the
transformers Trainer, and `distributed` launches it on several processes (torchrun or DeepSpeed). The train stage
(agora/stages/train.py) reads the config and calls these.
"""
