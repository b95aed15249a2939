"""The headline claims of each paper's abstract, the experiments that measure them, and each paper's key figure.

Written from the abstracts as ``/work/shared/theory/README.md`` summarises them (for [C] and [J] only the abstracts
were available: every formula behind their rows is our derivation, ``source = derived``). Experiments are named by
their registry names; a paper's experiments named by no headline are listed under it as "other experiments".
"""

from __future__ import annotations

from typing import NamedTuple


class Headline(NamedTuple):
    paper: str  # a key of experiments.claims.PAPERS
    text: str  # the claim of the abstract, in one sentence
    experiments: tuple[str, ...]  # the experiments whose rows (of this paper) measure it


#: papers in the order the report shows them
PAPER_ORDER = ("C", "Z", "J", "S")

HEADLINES = (
    Headline("C", "SGD in the saddle-to-saddle regime is Langevin dynamics with anisotropic, state-dependent gradient "
                  "noise; for aligned, balanced weights it splits into independent per-mode SDEs.",
             ("mode_agreement", "unaligned")),
    Headline("C", "The diffusion along a mode peaks before that mode is learned, and the peaks come in saddle order.",
             ("diffusion_peak", "unaligned")),
    Headline("C", "Each mode has a stationary law: with label noise the zero-flux law (≈ Boltzmann at small T_ε), "
                  "without it the gradient-flow fixed point.",
             ("stationary",)),
    Headline("Z", "Noise balance: SGD drives rescaling-symmetric parameter groups to equal gradient-noise, which "
                  "gradient flow's conserved imbalance never reaches.",
             ("law_of_balance", "noise_balance_dln", "relu_balance")),
    Headline("Z", "The stationary laws of SGD in diagonal linear networks are exact and closed-form, with power-law "
                  "tails and an infinite-depth limit.",
             ("diagonal_stationary", "width_independence", "power_law_tails", "infinite_depth")),
    Headline("Z", "Phase transitions: above a critical temperature T_c the depth-2 network collapses to zero.",
             ("phase_diagram", "discrete_collapse")),
    Headline("Z", "Broken ergodicity: the sign and width that the initialisation selects persist, so the stationary "
                  "law depends on the start.",
             ("sign_selection",)),
    Headline("Z", "Fluctuation inversion: more noise can mean less fluctuation (the variance falls to 0 as T → T_c).",
             ("fluctuation_inversion",)),
    Headline("J", "With initialisation variance w^−γ there is a transition at γ = 1: lazy, near a global minimum, for "
                  "γ < 1; saddle-to-saddle for γ > 1, sharpening with width.",
             ("phase_transition",)),
    Headline("J", "From a vanishing initialisation gradient flow goes saddle to saddle, visiting saddles of "
                  "increasing rank, to a low-rank minimum.",
             ("staircase", "escape_times", "escape_directions", "sparsity", "saxe")),
    Headline("S", "Exact solutions: gradient flow learns each mode along a sigmoid, in order of λs.", ("saxe",)),
)

#: the experiment whose first figure is each paper's key figure
KEY_FIGURE = {"C": "diffusion_peak", "Z": "diagonal_stationary", "J": "staircase", "S": "saxe"}
