"""Models: point tokenizer, Transformer blocks, the pretrained Transformers (ViT / BERT), the Stage I
autoencoder (the teacher), the Stage II student and the downstream heads."""
