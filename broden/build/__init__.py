"""Assembling Broden from its original sources (``broden build``): one adapter per source dataset
(:mod:`.sources`), the merge of their labels into one vocabulary (:mod:`.unify`, :mod:`.synonyms`) and the
two-pass, resumable, parallel job that writes the dataset (:mod:`.pipeline`)."""
