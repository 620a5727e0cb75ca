"""Enhancement: the aligned face crop in, the enhanced crop out (classical steps and the
restoration network)."""

from edge.enhance.stage import EnhancementStage, EnhanceResult, EnhanceStep

__all__ = ["EnhanceResult", "EnhanceStep", "EnhancementStage"]
