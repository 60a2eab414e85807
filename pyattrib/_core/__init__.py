"""Core mechanisms, each written once: call normalisation, targets, quadrature, the
chunked gradient kernel, random draws and model-state preservation."""
