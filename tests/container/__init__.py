"""Tests of the deployment: the container image, the compose file, the Debian package."""
