"""Universal adversarial patches (Brown et al. 2017): placement and compositing, training, printability
(NPS, TV, ΔE00), held-out success against control patches, and the patch folder ``physadv patch`` writes."""
