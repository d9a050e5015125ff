"""Speech recognition on ``core``: CTC over characters with any attention and any 1-D PE.

Modules: :mod:`speech.espeak` (eSpeak NG via ctypes), :mod:`speech.synth` (the embedded spoken-digits
set), :mod:`speech.data` (batches, bucketing, digits datamodule), :mod:`speech.real` (LibriSpeech and
JSONL manifests), :mod:`speech.audio` (soundfile I/O), :mod:`speech.model` (front end + encoder + CTC
head), :mod:`speech.decode` (greedy / beam), :mod:`speech.module` (Lightning task, WER/CER),
:mod:`speech.predict` (``mas-predict``).
"""
