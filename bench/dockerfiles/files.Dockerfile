# (a) a context of many small files, copied whole
ARG BASE=bench-base
FROM $BASE
COPY . /app
