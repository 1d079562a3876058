"""Sodium in hard carbon: where each stored Na sits (adsorption, intercalation, filling)."""

from hardcarbon.sodiation.sites import (
    SITE_CLASSES,
    SiteClassification,
    SiteRules,
    classify_sites,
    site_labels_array,
    site_sensitivity,
)

__all__ = [
    "SITE_CLASSES",
    "SiteClassification",
    "SiteRules",
    "classify_sites",
    "site_labels_array",
    "site_sensitivity",
]
