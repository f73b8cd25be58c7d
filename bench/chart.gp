# chart.gp: hive's rate divided by each peer's rate, per workload, on a
# log scale with a line at 1.0 (above it hive is faster). Bars grow from
# the 1.0 line up or down.
#
# bench/run.pl --chart FILE.svg writes the data file and runs:
#   gnuplot -e 'datafile="FILE.dat"; outfile="FILE.svg"; npeers=2; nrows=9;
#               ymin=0.1; ymax=10; charttitle="..."' bench/chart.gp
#
# Data file: a header line, then one line per workload:
#   workload "hive/erlang" "hive/go"
#   ping_pong 5.1 2.3
# "?" marks a missing ratio (a failed or absent run).

if (!exists("datafile")) datafile = "ratios.dat"
if (!exists("outfile")) outfile = "ratios.svg"
if (!exists("npeers")) npeers = 2
if (!exists("charttitle")) charttitle = "hive vs peers"

set terminal svg size 1100,560 dynamic enhanced font "sans,11" background rgb "white"
set output outfile
set datafile missing "?"
set key autotitle columnhead top left opaque box
set title charttitle noenhanced
set logscale y
if (exists("ymin") && exists("ymax")) set yrange [ymin:ymax]
set ylabel "hive rate / peer rate (above 1x: hive is faster)"
set format y "%gx"
set grid ytics
set xtics rotate by -25 noenhanced nomirror
set ytics nomirror
set bmargin 7
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb "black" front
set style fill solid 0.85 border -1

bw = 0.8 / npeers
off(i) = -0.4 + bw * (i - 0.5)
lo(r) = r < 1 ? r : 1
hi(r) = r < 1 ? 1 : r
colors = "#e8a33d #3d7ee8 #5cb85c #a05cb8"

if (exists("nrows")) set xrange [-0.6 : nrows - 0.4]

plot for [i=1:npeers] datafile \
        using ($0 + off(i)):(column(i+1)):($0 + off(i) - bw/2):($0 + off(i) + bw/2):(lo(column(i+1))):(hi(column(i+1))) \
        with boxxyerror lc rgb word(colors, i) title columnhead(i+1), \
     for [i=1:npeers] datafile \
        using ($0 + off(i)):(column(i+1) >= 1 ? column(i+1) : NaN):(sprintf("%.1fx", column(i+1))) \
        with labels offset 0,0.6 font ",8" notitle, \
     for [i=1:npeers] datafile \
        using ($0 + off(i)):(column(i+1) < 1 ? column(i+1) : NaN):(sprintf("%.2fx", column(i+1))) \
        with labels offset 0,-0.6 font ",8" notitle, \
     datafile using 0:(NaN):xtic(1) notitle
