"""Speech on ``core``: CTC speech recognition and spoken-command classification.

Modules follow the domain vocabulary: :mod:`speech.models` (front end, Conformer encoder, heads),
:mod:`speech.tasks` (Lightning tasks), :mod:`speech.data` (eSpeak NG synthesis, embedded sets, real
corpora, batching, audio I/O), :mod:`speech.decode` (CTC greedy / beam), :mod:`speech.predict`
(``mas-predict``), :mod:`speech.plots`.
"""

#: where classes named by older checkpoints live now (see core.train.checkpoints)
MOVED = {
    "speech.model": "speech.models",
    "speech.module": "speech.tasks",
    "speech.data.SpokenDigitsDataModule": "speech.data.digits.SpokenDigitsDataModule",
    "speech.real": "speech.data.files",
}
