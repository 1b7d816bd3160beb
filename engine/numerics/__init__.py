"""TFLite's integer arithmetic, bit for bit: fixed-point rules (fixedpoint.py), gemmlowp's math and the 8-bit
lookup tables (gemmlowp.py), and the multipliers computed at prepare (multipliers.py)."""
