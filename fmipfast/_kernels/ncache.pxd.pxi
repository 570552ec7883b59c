# ncache: cdef declarations included by _core.pxd (issue #3). Empty until its kernels land.
