#!/usr/bin/env perl
# servers.pl: the example servers next to their baselines, under the same
# clients, on loopback.
#
#   echo  hive's echo (gen_server + recv_async, and the blocking style)
#         and bench/epoll_echo.c, driven by bench/echo_load.c
#   http  hive's http_hello and nginx (return 200, same body, as many
#         workers as hive has schedulers) under wrk
#   kv    hive's kv and redis-server (no persistence) under
#         redis-benchmark -t set / -t get -c 50, plain and -P 16
#   idle  IDLE connections held open on echo (both styles) and epoll-echo:
#         resident memory per connection
#
# For every run: requests/s, p50 and p99 latency (from the client), system
# calls per request (perf stat -e raw_syscalls:sys_enter -p SERVER_PIDS
# around the client run, divided by every request the client made), and
# resident memory per connection (the server's VmRSS under load, less its
# VmRSS before the first connection, over the connections). Medians over
# --repeat runs go to a table on stdout and a markdown table, raw lines to
# a jsonl file. Each hive server runs once per I/O backend in --io
# (HIVE_IO=uring and HIVE_IO=epoll; default both), the baselines once.
#
# usage: perl bench/servers.pl --build DIR [--repeat N] [--quick]
#            [--only echo,http,kv,idle] [--io io_uring,epoll] [--out DIR] [--idle N]
# Needs: wrk, nginx, redis-server, redis-benchmark, perf (make
# deps-servers installs them); a missing baseline is skipped with a note.

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use Getopt::Long qw(GetOptions);
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(strftime WNOHANG);
use Sys::Hostname qw(hostname);
use Time::HiRes qw(sleep time);

my $ROOT = dirname(dirname(abs_path($0)));
my %opt = (repeat => 3, quick => 0, out => "$ROOT/bench/results", idle => 10000,
           only => 'echo,http,kv,idle', io => 'io_uring,epoll');
GetOptions('build=s' => \$opt{build}, 'repeat=i' => \$opt{repeat}, 'quick' => \$opt{quick},
           'only=s' => \$opt{only}, 'out=s' => \$opt{out}, 'idle=i' => \$opt{idle},
           'io=s' => \$opt{io})
    or die "usage: servers.pl --build DIR [--repeat N] [--quick] [--only LIST] [--io io_uring,epoll] [--out DIR]\n";
die "servers.pl: --build DIR (with examples/ and bench/ built) is required\n" unless $opt{build};
my $B = abs_path($opt{build});
my %only = map { $_ => 1 } split /,/, $opt{only};
my @IO = split /,/, $opt{io};
for (@IO) { die "servers.pl: --io takes io_uring and/or epoll, not '$_'\n" unless /^(io_uring|epoll)$/ }
my $DUR = $opt{quick} ? 2 : 5;          # seconds of load per run
my $KV_N = $opt{quick} ? 50000 : 200000; # redis-benchmark requests per run
my $IDLE = $opt{quick} ? 2000 : $opt{idle};
my $NCPU = `nproc` + 0 || 2;
my $TMP = tempdir('hive-srvbench-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub note { print STDERR "servers.pl: @_\n" }
sub which { my $p = shift; for (split /:/, $ENV{PATH}) { return "$_/$p" if -x "$_/$p" } undef }

my $perf_ok = which('perf') && system('perf stat -e raw_syscalls:sys_enter -o /dev/null -- true >/dev/null 2>&1') == 0;
note('perf cannot count raw_syscalls:sys_enter here: no system-call counts') unless $perf_ok;

# ---------------------------------------------------------------------
# processes

my @started; # pids to stop at exit, whatever happens
END { for my $p (@started) { kill 'KILL', $p if $p && kill 0, $p } }

# Starts CMD (a list), returns (pid, host, port) from its "listening on" line.
sub start_listening {
    my @cmd = @_;
    my $pid = open(my $fh, '-|', @cmd) // die "servers.pl: cannot start @cmd: $!\n";
    push @started, $pid;
    my $line;
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm 10;
        $line = <$fh>;
        alarm 0;
    };
    die "servers.pl: @cmd printed no \"listening on\" line\n"
        unless defined $line && $line =~ /^listening on \[?([^\]]+?)\]?:(\d+)$/;
    return { pid => $pid, fh => $fh, host => $1, port => $2, pids => [$pid] };
}

sub stop_server {
    my ($s) = @_;
    kill 'TERM', $s->{pid};
    my $t0 = time;
    while (waitpid($s->{pid}, WNOHANG) == 0) {
        if (time - $t0 > 10) { kill 'KILL', $s->{pid}; waitpid($s->{pid}, 0); last }
        sleep 0.01;
    }
    my $st = $?;
    close $s->{fh} if $s->{fh};
    @started = grep { $_ != $s->{pid} } @started;
    return $st;
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1, ReuseAddr => 1)
        or die "servers.pl: no free port: $!\n";
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub wait_port {
    my ($port) = @_;
    for (1 .. 1000) {
        my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 1);
        if ($c) { close $c; return 1 }
        sleep 0.01;
    }
    return 0;
}

sub children_of {
    my ($ppid) = @_;
    my @kids;
    for my $d (glob '/proc/[0-9]*') {
        open(my $f, '<', "$d/stat") or next;
        my $st = <$f>;
        close $f;
        push @kids, $1 if $st && $st =~ /^(\d+) \(.*\) \S+ (\d+)/ && $2 == $ppid;
    }
    return @kids;
}

sub rss_kib {
    my $t = 0;
    for my $p (@_) {
        open(my $f, '<', "/proc/$p/status") or next;
        while (<$f>) { $t += $1 if /^VmRSS:\s+(\d+)/ }
        close $f;
    }
    return $t;
}

# Runs the client CMD while perf counts the servers' system calls; returns
# (client output, syscalls or undef, peak-ish RSS sampled mid-run).
sub run_client {
    my ($srv, @cmd) = @_;
    my $pfile = "$TMP/perf.$$";
    my @full = @cmd;
    @full = ('perf', 'stat', '-x,', '-e', 'raw_syscalls:sys_enter', '-o', $pfile,
             '-p', join(',', @{ $srv->{pids} }), '--', @cmd) if $perf_ok;
    my $pid = open(my $fh, '-|') // die "fork: $!\n";
    if (!$pid) {
        open(STDERR, '>&', \*STDOUT);
        exec @full or exit 127;
    }
    # sample the servers' memory while the load runs
    my $rss = 0;
    my $out = '';
    my $sel = '';
    vec($sel, fileno($fh), 1) = 1;
    while (1) {
        my $r = select(my $ready = $sel, undef, undef, 0.25);
        my $now = rss_kib(@{ $srv->{pids} });
        $rss = $now if $now > $rss;
        next unless $r > 0;
        my $n = sysread($fh, my $buf, 65536);
        last unless $n;
        $out .= $buf;
    }
    close $fh;
    my $st = $?;
    my $sys;
    if ($perf_ok && open(my $p, '<', $pfile)) {
        while (<$p>) { $sys = $1 if /^(\d+),,?[^,]*,?raw_syscalls:sys_enter/ || /^(\d+),.*raw_syscalls:sys_enter/ }
        close $p;
    }
    return ($out, $sys, $rss, $st);
}

sub median {
    my @v = sort { $a <=> $b } grep { defined } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

# ---------------------------------------------------------------------
# results

make_path($opt{out});
my $stamp = strftime('%Y-%m-%d', gmtime);
my $host = hostname();
my $jsonl = "$opt{out}/servers-$stamp-$host.jsonl";
my $n = 1;
$jsonl = "$opt{out}/servers-$stamp-$host-" . ++$n . '.jsonl' while -e $jsonl;
open(my $J, '>', $jsonl) or die "servers.pl: $jsonl: $!\n";
my $json = JSON::PP->new->canonical;
my $cpu = `grep -m1 'model name' /proc/cpuinfo` =~ s/.*:\s*//r =~ s/\s+$//r;
my $kernel = `uname -r` =~ s/\s+$//r;
print $J $json->encode({ machine => $host, cpus => $NCPU, cpu => $cpu, kernel => $kernel,
                         date => strftime('%Y-%m-%dT%H:%M:%SZ', gmtime),
                         syscall_counter => $perf_ok ? 'perf stat -e raw_syscalls:sys_enter' : 'none',
                         git => (`git -C $ROOT rev-parse --short HEAD 2>/dev/null` =~ s/\s+$//r) }), "\n";

my @rows; # [workload, server, rps, p50_us, p99_us, syscalls/req, rss/conn KiB, conns]
sub record {
    my ($wl, $server, $runs, $conns) = @_;
    my %m;
    for my $k (qw(rps p50_us p99_us sys_per_req rss_per_conn_kib)) {
        $m{$k} = median(map { $_->{$k} } @$runs);
    }
    print $J $json->encode({ workload => $wl, server => $server, conns => $conns, runs => $runs,
                             median => \%m }), "\n";
    push @rows, [$wl, $server, @m{qw(rps p50_us p99_us sys_per_req rss_per_conn_kib)}, $conns];
    printf STDERR "  %-22s %-26s %10s req/s  p50 %8s us  p99 %8s us  %6s sys/req  %7s KiB/conn\n",
        $wl, $server, fmt($m{rps}, 0), fmt($m{p50_us}, 1), fmt($m{p99_us}, 1),
        fmt($m{sys_per_req}, 2), fmt($m{rss_per_conn_kib}, 2);
}

sub fmt {
    my ($v, $d) = @_;
    return 'n/a' unless defined $v;
    return sprintf("%.${d}f", $v);
}

$ENV{HIVE_SCHEDULERS} //= $NCPU;

# ---------------------------------------------------------------------
# echo

my $LOAD = "$B/bench/echo-load";
sub echo_run {
    my ($srv, $conns) = @_;
    my $base = rss_kib(@{ $srv->{pids} });
    my ($out, $sys, $rss, $st) = run_client($srv, $LOAD, '--host', $srv->{host}, '--port', $srv->{port},
        '--conns', $conns, '--threads', $NCPU, '--size', 64, '--duration', $DUR, '--warmup', 1);
    my ($line) = $out =~ /^(\{.*\})$/m;
    die "servers.pl: echo-load failed: $out\n" unless $line && $st == 0;
    my $r = decode_json($line);
    return { rps => $r->{rps}, p50_us => $r->{p50_us}, p99_us => $r->{p99_us},
             sys_per_req => defined $sys && $r->{total} ? $sys / $r->{total} : undef,
             rss_per_conn_kib => ($rss - $base) / $conns, requests => $r->{total} };
}

# Every hive server runs on each I/O backend of --io (HIVE_IO); the
# baselines once. Returns [name, HIVE_IO value, the rest...] entries.
sub on_backends {
    my ($name, @rest) = @_;
    return map { ["$name [$_]", $_ eq 'io_uring' ? 'uring' : $_, @rest] } @IO;
}

# The echo servers, both hive styles and the baseline: name, HIVE_IO, command.
my @ECHO_SERVERS = (on_backends('hive echo (recv_async)', "$B/examples/echo", '--style', 'async'),
                    on_backends('hive echo (blocking)', "$B/examples/echo", '--style', 'blocking'),
                    ['epoll-echo (baseline)', 'auto', "$B/bench/epoll-echo", '--threads', $NCPU]);

if ($only{echo}) {
    note("echo: 64-byte messages, one in flight per connection, ${DUR}s per run");
    for my $conns (50, 500) {
        for my $s (@ECHO_SERVERS) {
            my ($name, $io, @cmd) = @$s;
            local $ENV{HIVE_IO} = $io;
            my @runs;
            for (1 .. $opt{repeat}) {
                my $srv = start_listening(@cmd, '--port', 0);
                push @runs, echo_run($srv, $conns);
                stop_server($srv) == 0 or note("$name did not exit 0");
            }
            record("echo c=$conns", $name, \@runs, $conns);
        }
    }
}

# ---------------------------------------------------------------------
# http

sub wrk_parse {
    my ($out) = @_;
    my %r;
    $r{rps} = $1 if $out =~ /Requests\/sec:\s+([\d.]+)/;
    $r{total} = $1 if $out =~ /(\d+) requests in/;
    for my $q ([50, 'p50_us'], [99, 'p99_us']) {
        if ($out =~ /^\s+$q->[0]%\s+([\d.]+)(us|ms|s)\s*$/m) {
            $r{$q->[1]} = $1 * ($2 eq 'us' ? 1 : $2 eq 'ms' ? 1000 : 1e6);
        }
    }
    $r{errors} = $out =~ /Non-2xx|Socket errors/ ? 1 : 0;
    return \%r;
}

sub http_run {
    my ($srv, $conns) = @_;
    my $base = $srv->{base_rss} // rss_kib(@{ $srv->{pids} });
    my ($out, $sys, $rss, $st) = run_client($srv, 'wrk', '-t', $NCPU, '-c', $conns, '-d', "${DUR}s",
        '--latency', "http://$srv->{host}:$srv->{port}/");
    my $r = wrk_parse($out);
    die "servers.pl: wrk failed: $out\n" unless $st == 0 && $r->{rps};
    note("wrk reported errors: $out") if $r->{errors};
    return { rps => $r->{rps}, p50_us => $r->{p50_us}, p99_us => $r->{p99_us},
             sys_per_req => defined $sys && $r->{total} ? $sys / $r->{total} : undef,
             rss_per_conn_kib => ($rss - $base) / $conns, requests => $r->{total} };
}

sub start_nginx {
    my $dir = "$TMP/nginx";
    make_path("$dir/logs");
    my $port = free_port();
    open(my $c, '>', "$dir/nginx.conf") or die;
    print $c <<"EOF";
worker_processes $NCPU;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 20000; }
http {
    access_log off;
    keepalive_requests 10000000;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        listen 127.0.0.1:$port;
        location / {
            default_type text/plain;
            return 200 "Hello, World!";
        }
    }
}
EOF
    close $c;
    my $pid = fork() // die;
    if (!$pid) {
        open(STDOUT, '>', '/dev/null');
        exec 'nginx', '-p', $dir, '-e', "$dir/logs/error.log", '-c', "$dir/nginx.conf" or exit 127;
    }
    push @started, $pid;
    wait_port($port) or die "servers.pl: nginx did not start (see $dir/logs/error.log)\n";
    my @w;
    for (1 .. 500) { @w = children_of($pid); last if @w >= $NCPU; sleep 0.01 }
    return { pid => $pid, host => '127.0.0.1', port => $port, pids => [$pid, @w] };
}

if ($only{http}) {
    note("http: wrk -t$NCPU -c50 and -c500, ${DUR}s per run, keep-alive, GET /");
    my $have_nginx = which('nginx') || -x '/usr/sbin/nginx';
    $ENV{PATH} .= ':/usr/sbin' unless which('nginx');
    note('nginx not installed: no http baseline') unless $have_nginx;
    for my $conns (50, 500) {
        my @servers = on_backends('hive http_hello', sub { start_listening("$B/examples/http_hello", '--port', 0) });
        push @servers, ["nginx (baseline, $NCPU workers)", 'auto', \&start_nginx] if $have_nginx;
        for my $s (@servers) {
            my ($name, $io, $start) = @$s;
            local $ENV{HIVE_IO} = $io;
            my @runs;
            for (1 .. $opt{repeat}) {
                my $srv = $start->();
                push @runs, http_run($srv, $conns);
                stop_server($srv);
            }
            record("http c=$conns", $name, \@runs, $conns);
        }
    }
}

# ---------------------------------------------------------------------
# kv

sub rb_run {
    my ($srv, $test, $pipe) = @_;
    my $base = rss_kib(@{ $srv->{pids} });
    my ($out, $sys, $rss, $st) = run_client($srv, 'redis-benchmark', '-h', $srv->{host}, '-p', $srv->{port},
        '-t', $test, '-c', 50, '-n', $KV_N, '-P', $pipe, '-r', 100000, '--csv');
    die "servers.pl: redis-benchmark failed: $out\n" unless $st == 0;
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    my ($rps, $p50, $p99) = $out =~ /^"[^"]+","([\d.]+)","[\d.]+","[\d.]+","([\d.]+)","[\d.]+","([\d.]+)"/m;
    die "servers.pl: redis-benchmark output not understood: $out\n" unless $rps;
    return { rps => $rps, p50_us => $p50 * 1000, p99_us => $p99 * 1000,
             sys_per_req => defined $sys ? $sys / $KV_N : undef,
             rss_per_conn_kib => ($rss - $base) / 50, requests => $KV_N };
}

sub start_redis {
    my $port = free_port();
    my $pid = fork() // die;
    if (!$pid) {
        open(STDOUT, '>', '/dev/null');
        exec 'redis-server', '--port', $port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
             '--daemonize', 'no', '--protected-mode', 'no', '--dir', $TMP or exit 127;
    }
    push @started, $pid;
    wait_port($port) or die "servers.pl: redis-server did not start\n";
    return { pid => $pid, host => '127.0.0.1', port => $port, pids => [$pid] };
}

if ($only{kv}) {
    note("kv: redis-benchmark -c 50 -n $KV_N -r 100000, -t set and -t get, -P 1 and -P 16");
    my $have_redis = which('redis-server');
    note('redis-server not installed: no kv baseline') unless $have_redis;
    for my $pipe (1, 16) {
        for my $test (qw(set get)) {
            my @servers = on_backends('hive kv', sub { start_listening("$B/examples/kv", '--port', 0) });
            # redis-server runs its commands on one thread: hive with one
            # scheduler is the same number of threads of work (as nginx
            # gets as many workers as hive has schedulers), and on a machine
            # whose cores the client shares it is also hive's best setting
            # (docs/io.md, "Tail latency").
            push @servers, map { [$_->[0] =~ s/^hive kv/hive kv, 1 scheduler/r, $_->[1], $_->[2], 1] }
                           on_backends('hive kv', sub { start_listening("$B/examples/kv", '--port', 0) })
                if $NCPU > 1;
            push @servers, ['redis-server (baseline)', 'auto', \&start_redis] if $have_redis;
            for my $s (@servers) {
                my ($name, $io, $start, $scheds) = @$s;
                local $ENV{HIVE_IO} = $io;
                local $ENV{HIVE_SCHEDULERS} = $scheds // $ENV{HIVE_SCHEDULERS};
                my @runs;
                for (1 .. $opt{repeat}) {
                    my $srv = $start->();
                    push @runs, rb_run($srv, $test, $pipe);
                    stop_server($srv);
                }
                record("kv $test -P $pipe", $name, \@runs, 50);
            }
        }
    }
}

# ---------------------------------------------------------------------
# idle connections

if ($only{idle}) {
    note("idle: $IDLE connections opened, one echo each, then held");
    for my $s (@ECHO_SERVERS) {
        my ($name, $io, @cmd) = @$s;
        local $ENV{HIVE_IO} = $io;
        my @runs;
        for (1 .. $opt{repeat}) {
            my $srv = start_listening(@cmd, '--port', 0);
            my $base = rss_kib($srv->{pid});
            # echo-load holds its connections until its stdin ends: a pipe
            # this script keeps open, not ours (which may be /dev/null)
            pipe(my $hold_r, my $hold_w) or die "servers.pl: pipe: $!\n";
            my $pid = open(my $lf, '-|') // die;
            if (!$pid) {
                close $hold_w;
                open(STDIN, '<&', $hold_r) or exit 127;
                exec $LOAD, '--host', $srv->{host}, '--port', $srv->{port}, '--idle', $IDLE or exit 127;
            }
            close $hold_r;
            my $line = <$lf>;
            die "servers.pl: echo-load --idle failed\n" unless $line && $line =~ /^idle/;
            sleep 0.5; # let the last replies' buffers go back
            my $held = rss_kib($srv->{pid});
            die "servers.pl: echo-load let its idle connections go before the measurement\n"
                if waitpid($pid, WNOHANG) != 0;
            close $hold_w;
            kill 'TERM', $pid;
            close $lf;
            push @runs, { rss_per_conn_kib => ($held - $base) / $IDLE, base_kib => $base,
                          held_kib => $held };
            stop_server($srv);
        }
        record("idle x$IDLE", $name, \@runs, $IDLE);
    }
}

close $J;

# ---------------------------------------------------------------------
# the table

my @head = ('workload', 'server', 'req/s', 'p50 us', 'p99 us', 'syscalls/req', 'KiB/conn');
my @lines = map { [ $_->[0], $_->[1], fmt($_->[2], 0), fmt($_->[3], 1), fmt($_->[4], 1),
                    fmt($_->[5], 2), fmt($_->[6], 2) ] } @rows;
for my $r (@lines) { # idle runs have no throughput or latency
    next unless $r->[0] =~ /^idle/;
    for my $i (2 .. 5) { $r->[$i] = '-' if $r->[$i] eq 'n/a' }
}
my @w = map { my $i = $_; my $m = length $head[$i]; for (@lines) { $m = length $_->[$i] if length $_->[$i] > $m } $m } 0 .. $#head;
print "\n";
printf "%-*s  %-*s  %*s  %*s  %*s  %*s  %*s\n", map { ($w[$_], $head[$_]) } 0 .. $#head;
for my $r (@lines) { printf "%-*s  %-*s  %*s  %*s  %*s  %*s  %*s\n", map { ($w[$_], $r->[$_]) } 0 .. $#head }

my $md = "$opt{out}/servers.md";
open(my $M, '>', $md) or die "servers.pl: $md: $!\n";
print $M "Servers on $host ($NCPU CPUs, $cpu, Linux $kernel), ", strftime('%Y-%m-%d', gmtime),
    ", median of $opt{repeat} runs", $opt{quick} ? ' (quick sizes)' : '', ". System calls: ",
    $perf_ok ? '`perf stat -e raw_syscalls:sys_enter -p PID` over the client run' : 'not counted', ".\n\n";
my $load = `cat /proc/loadavg` =~ s/^(\S+ \S+ \S+).*/$1/sr;
print $M "Load average at the end: $load (the machine is shared). KiB/conn: the growth of the ",
    "server's VmRSS (all its processes) under load or with the idle connections held, over the ",
    "connections; kernel socket buffers are not in it, and pages a server allocated but never ",
    "touched (epoll-echo's 16 KiB buffer per connection) are not resident.\n\n";
print $M '| ', join(' | ', @head), " |\n";
print $M '|', join('|', map { $_ < 2 ? '---' : '---:' } 0 .. $#head), "|\n";
print $M '| ', join(' | ', @$_), " |\n" for @lines;
close $M;
print "\nraw: $jsonl\nmarkdown: $md\n";
