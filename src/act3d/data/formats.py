"""The dataset formats act3d reads, named once (the config type, the CLI choices and the error messages)."""

from typing import Literal, get_args

DataFormat = Literal[
    "default",
    "shapenet55",
    "modelnet40",
    "modelnet40-dat",
    "modelnet40-fewshot",
    "scanobjectnn",
    "shapenetpart",
    "s3dis",
    "class-folders",
]
FORMATS: list[str] = list(get_args(DataFormat))
