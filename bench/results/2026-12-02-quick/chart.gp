set terminal pngcairo size 1400,950 font 'sans,10'
set output '/work/main/bench/results/2026-12-02-quick/chart.png'
set multiplot layout 2,2 title "certrelay vs peers, 2026-12-02, AMD EPYC, 2 vCPU" font 'sans,12'
set grid ytics
set tics nomirror
unset key
set offsets 0, 0, graph 0.1, 0
set xrange [-0.6:3.6]
set title "W3 (lock-step, 100 × 10 KiB per session): system calls per message"
unset logscale y
set yrange [0:*]
plot '/work/main/bench/results/2026-12-02-quick/chart-W3-syscalls_total.dat' using ($1+0.0):2:(0.6):5:xtic(6) with boxes fs solid 0.8 border -1 lc rgb variable, '/work/main/bench/results/2026-12-02-quick/chart-W3-syscalls_total.dat' using ($1+0.0):2:3:4 with yerrorbars lc rgb 'black' pt -1, '/work/main/bench/results/2026-12-02-quick/chart-W3-syscalls_total.dat' using ($1+0.0):4:(column(2) >= 100 ? sprintf('%.0f', column(2)) : sprintf('%.3g', column(2))) with labels offset 0,0.8
set title "W3d (next envelope behind the dot): context switches per message"
unset logscale y
set yrange [0:*]
plot '/work/main/bench/results/2026-12-02-quick/chart-W3d-ctxsw.dat' using ($1+0.0):2:(0.6):5:xtic(6) with boxes fs solid 0.8 border -1 lc rgb variable, '/work/main/bench/results/2026-12-02-quick/chart-W3d-ctxsw.dat' using ($1+0.0):2:3:4 with yerrorbars lc rgb 'black' pt -1, '/work/main/bench/results/2026-12-02-quick/chart-W3d-ctxsw.dat' using ($1+0.0):4:(column(2) >= 100 ? sprintf('%.0f', column(2)) : sprintf('%.3g', column(2))) with labels offset 0,0.8
set title "server instructions per session (callgrind; solid full handshake, hatched resumed)"
unset logscale y
set yrange [0:*]
plot '/work/main/bench/results/2026-12-02-quick/chart-CG-ir_full_session.dat' using ($1-0.19):2:(0.36):5:xtic(6) with boxes fs solid 0.8 border -1 lc rgb variable, '/work/main/bench/results/2026-12-02-quick/chart-CG-ir_full_session.dat' using ($1-0.19):2:3:4 with yerrorbars lc rgb 'black' pt -1, '/work/main/bench/results/2026-12-02-quick/chart-CG-ir_full_session.dat' using ($1-0.19):4:(column(2) >= 100 ? sprintf('%.0f', column(2)) : sprintf('%.3g', column(2))) with labels offset 0,0.8, '/work/main/bench/results/2026-12-02-quick/chart-CG-ir_resumed_session.dat' using ($1+0.19):2:(0.36):5 with boxes fs pattern 4 border -1 lc rgb variable, '/work/main/bench/results/2026-12-02-quick/chart-CG-ir_resumed_session.dat' using ($1+0.19):2:3:4 with yerrorbars lc rgb 'black' pt -1, '/work/main/bench/results/2026-12-02-quick/chart-CG-ir_resumed_session.dat' using ($1+0.19):4:(column(2) >= 100 ? sprintf('%.0f', column(2)) : sprintf('%.3g', column(2))) with labels offset 0,0.8
set title "W4: memory per idle TLS connection, KiB (log scale; solid RSS, hatched PSS)"
set logscale y
set yrange [1:*]
plot '/work/main/bench/results/2026-12-02-quick/chart-W4-rss_conn_kib.dat' using ($1-0.19):2:(0.36):5:xtic(6) with boxes fs solid 0.8 border -1 lc rgb variable, '/work/main/bench/results/2026-12-02-quick/chart-W4-rss_conn_kib.dat' using ($1-0.19):2:3:4 with yerrorbars lc rgb 'black' pt -1, '/work/main/bench/results/2026-12-02-quick/chart-W4-rss_conn_kib.dat' using ($1-0.19):4:(column(2) >= 100 ? sprintf('%.0f', column(2)) : sprintf('%.3g', column(2))) with labels offset 0,0.8, '/work/main/bench/results/2026-12-02-quick/chart-W4-pss_conn_kib.dat' using ($1+0.19):2:(0.36):5 with boxes fs pattern 4 border -1 lc rgb variable, '/work/main/bench/results/2026-12-02-quick/chart-W4-pss_conn_kib.dat' using ($1+0.19):2:3:4 with yerrorbars lc rgb 'black' pt -1, '/work/main/bench/results/2026-12-02-quick/chart-W4-pss_conn_kib.dat' using ($1+0.19):4:(column(2) >= 100 ? sprintf('%.0f', column(2)) : sprintf('%.3g', column(2))) with labels offset 0,0.8
unset multiplot
