"""Maximising a violation inside ball ∩ domain: PGD (l_inf / l_2 / l_1 steps), FGSM, sampling."""
from specrob.search.region import Region, ascent_step, project_l1
from specrob.search.searches import PGD, SEARCHES, Sampling, Search, fgsm, make_search

__all__ = ["Region", "ascent_step", "project_l1", "PGD", "Sampling", "Search", "fgsm",
           "make_search", "SEARCHES"]
