"""Face restoration: the CCTV degradation model (shared by training and evaluation) and,
later, the runtime of the distilled restoration network."""
