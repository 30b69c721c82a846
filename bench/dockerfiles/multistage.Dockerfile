# (c) four stages, each consuming the previous one's output: three RUN steps, COPY --from between stages
ARG BASE=bench-base
FROM $BASE AS one
COPY input.txt /input.txt
RUN wc -c /input.txt > /one.txt

FROM $BASE AS two
COPY --from=one /one.txt /one.txt
RUN cat /one.txt /one.txt > /two.txt

FROM $BASE AS three
COPY --from=two /two.txt /two.txt
RUN sed s/input/three/ /two.txt > /three.txt

FROM $BASE
COPY --from=three /three.txt /three.txt
CMD ["cat", "/three.txt"]
