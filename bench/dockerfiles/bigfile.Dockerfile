# (b) one large file (50 MB of random bytes by default: incompressible)
ARG BASE=bench-base
FROM $BASE
COPY big.bin /data/big.bin
