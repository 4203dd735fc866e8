"""Kubernetes side of the workflow: pod rendering, preemption-aware pod operators, the chief
(Job + Service), manifests from include/k8s, and offline rendering of every object."""
