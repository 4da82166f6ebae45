"""Obtaining the prebuilt Broden releases: verified, resumable downloads (:mod:`.fetch`), safe extraction
(:mod:`.extract`) and the release table with the whole download -> convert -> validate job (:mod:`.releases`)."""
