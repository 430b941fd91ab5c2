"""The Kubernetes manifests (kustomize bases and overlays) and their offline renderer, render.py."""
