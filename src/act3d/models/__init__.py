"""Models: point tokenizer, Transformer blocks, pretrained teachers, the Stage I autoencoder, the Stage II
student and the downstream heads."""
