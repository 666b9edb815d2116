"""Local stand-ins for the cloud services (Azurite, a registry, a Docker engine and swarm, a base
image, a Kubernetes control plane) and the local pipeline that runs CI and release against them."""
