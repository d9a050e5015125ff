"""Vision on ``core``: ViT classification and segmentation (models, tasks, data, predict, plots)."""

#: where classes named by older checkpoints live now (see core.train.checkpoints)
MOVED = {
    "vision.model": "vision.models",
    "vision.seg_model": "vision.models",
    "vision.module": "vision.tasks",
    "vision.data.DigitsDataModule": "vision.data.digits.DigitsDataModule",
    "vision.image_data": "vision.data.folders",
    "vision.seg_data": "vision.data.canvases",
    "vision.pet": "vision.data.pet",
}
