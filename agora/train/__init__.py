"""Student training: turn a generated data set into a fine-tuned student model.

`student` materialises the base student as a local Hugging Face folder, `data` turns
instruction/response rows into loss-masked tensors, and `sft` runs the full fine-tune.
"""
