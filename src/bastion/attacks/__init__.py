"""Attack algorithms, one file per attack, grouped by threat: ``evasion`` (and, as they
land, ``poisoning``, ``privacy``, ``extraction``).

Attacks are plain functions on tensors; probes wrap them into findings.

Examples
--------
>>> from bastion.attacks.evasion import pgd, fab
>>> pgd.__module__, fab.__module__
('bastion.attacks.evasion.pgd', 'bastion.attacks.evasion.fab')
"""
