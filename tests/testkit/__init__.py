"""Helpers the tests share (pytest puts tests/ on sys.path, so tests import them as `testkit.*`):

- graphs.py        tiny hand-built ONNX embedder/generator graphs, export folders, fake TensorRT / CUDA modules
- stream.py        SynthVI-like clips, walkers, a fake embedder and a colour detector for the stream tests
- train.py         micro configs and SynthVI data for the training tests
- twocams.py       two pinhole cameras on one ground and the tracks they see, for the self-calibration tests
- cli.py           `hicmd` run as a user runs it, and the one-line error check
- checkpoints.py   random checkpoints with non-trivial BatchNorm statistics, for export and evaluation tests
- stream_model.py  the trained `tiny` model the stream-with-a-real-model tests use (the `trained` fixture)
"""
