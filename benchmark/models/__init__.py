"""The model to dissect: loading it from a spec (:mod:`.loader`) and tapping its layers (:mod:`.layers`)."""
