"""3DETR (Misra, Girdhar, Joulin, ICCV 2021; facebookresearch/3detr @a5d1aad) for scene-level detection, one
module per part, each equal to the official code for the same weights."""
