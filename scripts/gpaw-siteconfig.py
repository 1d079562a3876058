# GPAW build configuration for hardcarbon (read by GPAW's setup.py through GPAW_CONFIG).
#
# Serial build: every structure is labelled in its own process with BLAS pinned to one
# thread, so GPAW needs no MPI.  `mpi = False` must be explicit: GPAW otherwise turns MPI
# on whenever an `mpic++` wrapper is on PATH, and the `mpich` wheel that hardcarbon
# depends on puts one into every virtualenv's bin/.
#
# Libraries come from Debian: libxc-dev, libfftw3-dev, libopenblas-dev (see
# scripts/install-dft.sh).  `noblas = False` and `nolibxc = False` make the build fail
# loudly when a library is missing, instead of GPAW's default of silently building a
# module without libxc (then PBE is unavailable) or without BLAS.
#
# The names below are globals of GPAW's setup.py, which exec()s this file.

mpi = False
compiler = 'g++'  # GPAW 26 compiles its .c sources as C++; gcc would treat them as C
fftw = True
scalapack = False
noblas = False
nolibxc = False
libraries = ['xc', 'fftw3', 'openblas']
