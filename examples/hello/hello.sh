#!/bin/sh
echo "$GREETING from a pydock image, running under pyrunc as $(id -u):$(id -g) in $(pwd)"
cat /app/built.txt
