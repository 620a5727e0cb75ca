"""`face-edge bench`: how fast the models and the whole daemon path run on this machine,
against FP32 and a GFPGAN-class network timed in the same run (issue 5).

- timing.py: warm-up, then time until the median is stable; percentiles
- models.py: detector per frame and restorer per face, per runtime/precision/threads
- baseline.py: the GFPGAN-class network (made by tools/bench) per face
- pipeline.py: the daemon path on a video, fast and paced, in a process of its own
- report.py: targets, Markdown, PNG chart
- run.py: the command
"""
