"""Evasion probes: adversarial inputs that make a model answer wrongly (OWASP ML01).

White-box (torch targets with gradients): ``evasion.pgd``, ``evasion.apgd`` and
``evasion.min_norm`` in :mod:`.gradient`, the AutoAttack ensemble ``evasion.auto`` in
:mod:`.auto`. Black-box: ``evasion.square``, ``evasion.hop_skip_jump`` and the
constrained ``evasion.tabular`` in their own modules. Detectors under adaptive attack:
``evasion.detector_adaptive`` in :mod:`.detector_eval` (feature squeezing in
:mod:`.detector_squeezing`, ensemble disagreement in :mod:`.detector_ensemble`, the
shared attack loop in :mod:`.detector_attack`).

Every probe reads its budgets with the one rule of
:mod:`bastion.attacks.evasion.units` (parameter ``units``: ``auto``, ``raw`` or
``range``) and states the resolved units in its findings.
"""
