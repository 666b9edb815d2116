"""Local stand-ins for the cloud services: a Docker engine, a base image, and friends."""
