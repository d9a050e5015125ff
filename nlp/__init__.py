"""Text on ``core``: classification and translation (models, tasks, data, predict, plots)."""

#: where classes named by older checkpoints live now (see core.train.checkpoints)
MOVED = {
    "nlp.model": "nlp.models",
    "nlp.module.classification_task": "core.train.tasks.ClassificationTask",
    "nlp.module": "nlp.tasks",
    "nlp.data.TextClassificationDataModule": "nlp.data.modules.TextClassificationDataModule",
    "nlp.data.TranslationDataModule": "nlp.data.modules.TranslationDataModule",
}
