// The local node's own small programs, built by steps/local/kube_build.py: no dependencies.
module aiship.local/tools/kube/node

go 1.26.0
