"""Training. `loop.train` is the entry point: run.py opens a run (process group, resume or fresh start, output
folder), trainer.py holds the optimisers and the D / G steps, whose losses are the two halves of the objective,
idpig.py (image generation) and hfl.py (identification); hooks.py logs, draws samples, saves checkpoints and
evaluates; sampler.py draws the batches; state.py, checkpoint.py and housekeeping.py keep resumes bit-exact and
the run folder tidy."""
