# rewrite: batch-core fragment (issue #3), included by _core.pyx. Empty until its kernels land.
