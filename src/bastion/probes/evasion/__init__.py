"""Evasion probes: adversarial inputs that make a model answer wrongly (OWASP ML01).

White-box (torch targets with gradients): ``evasion.pgd``, ``evasion.apgd`` and
``evasion.min_norm`` in :mod:`.gradient`, the AutoAttack ensemble ``evasion.auto`` in
:mod:`.auto`. Black-box: ``evasion.square``, ``evasion.hop_skip_jump`` and the
constrained ``evasion.tabular`` in their own modules.
"""
