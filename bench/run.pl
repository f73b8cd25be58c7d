#!/usr/bin/env perl
# run.pl: run hive-bench and its peers (Erlang/OTP, Go) on the same
# workloads, keep every raw result line, and print one comparison table.
#
# usage: perl bench/run.pl --hive PATH_TO_hive-bench
#            [--peers erlang,go|none] [--repeat N] [--quick] [--only NAMES]
#            [--out DIR] [--chart FILE.svg] [--build-dir DIR] [--timeout S]
#            [--no-isolate]
#
#   --hive PATH       the hive-bench binary ("none": run the peers only)
#   --peers LIST      peers to run, comma separated (default erlang,go)
#   --repeat N        runs per workload and runtime (default 1); the table
#                     shows medians
#   --quick           small parameters: the whole suite in a few seconds
#   --only NAMES      only these workloads (comma separated)
#   --out DIR         where the raw lines go (default bench/results), as
#                     <YYYY-MM-DD>-<hostname>.jsonl, first line the machine
#                     (a -2, -3, ... suffix when that file already exists)
#   --chart FILE.svg  with gnuplot: a bar chart of hive's ratio to each peer
#   --build-dir DIR   where the peers are built (default build/peers)
#   --timeout S       wall-clock limit per runtime invocation (default 3600)
#   --no-isolate      run each runtime once with --repeat N for the whole
#                     suite, instead of once per workload and repetition
#   --probe PATH      the core-to-core probe (default: c2c-probe next to
#                     hive-bench; "none": no probe)
#
# By default every workload run gets a fresh process (the runtime is run
# as `CMD --json --repeat 1 [--quick] --only NAME`, the names coming from
# `CMD --list`): memory freed by one run is otherwise reused by the next,
# and the resident-memory figures (bytes_per_proc) of later runs come out
# too small, for every runtime. --no-isolate runs
# `CMD --json --repeat N [--quick] [--only NAMES]` once per runtime.
#
# The runs are interleaved: repetition by repetition, workload by
# workload, every runtime's run of a workload right after the other's, so
# that the runtimes compared in one repetition ran minutes, not an hour,
# apart. Before and after every run the core-to-core probe (c2c-probe)
# measures how long a cache line takes to move between two CPUs: on a
# virtual machine the host can change that by 4x while the guest runs, and
# every workload whose messages cross cores moves with it, for every
# runtime alike (docs/performance.md). Each raw line gets rep,
# c2c_ns_before and c2c_ns_after; the table adds, per peer, the range of
# hive's ratio over the repetitions (each repetition's runs paired), and
# the range of the probe's readings.
#
# A peer whose toolchain is missing is skipped with a note. The exit
# status is 0 unless hive-bench failed to run or reported "ok":false.
# Needs only core Perl modules.

use strict;
use warnings;
use Cwd qw(abs_path getcwd);
use File::Basename qw(dirname basename);
use File::Path qw(make_path);
use File::Spec;
use Getopt::Long qw(GetOptions);
use JSON::PP;
use POSIX qw(strftime WNOHANG);
use Sys::Hostname qw(hostname);

my $ROOT = dirname(dirname(abs_path($0)));
my @KNOWN_PEERS = qw(erlang go);

my %opt = (
    peers     => join(',', @KNOWN_PEERS),
    repeat    => 1,
    quick     => 0,
    out       => File::Spec->catdir($ROOT, 'bench', 'results'),
    build_dir => File::Spec->catdir($ROOT, 'build', 'peers'),
    timeout   => 3600,
    isolate   => 1,
    probe     => undef,
);

sub usage {
    my ($msg) = @_;
    print STDERR "run.pl: $msg\n" if $msg;
    print STDERR <<'EOF';
usage: perl bench/run.pl --hive PATH_TO_hive-bench [--peers erlang,go|none]
           [--repeat N] [--quick] [--only NAMES] [--out DIR] [--chart FILE.svg]
           [--build-dir DIR] [--timeout SECONDS] [--no-isolate] [--probe PATH|none]
EOF
    exit 2;
}

GetOptions(
    'hive=s'      => \$opt{hive},
    'peers=s'     => \$opt{peers},
    'repeat=i'    => \$opt{repeat},
    'quick'       => \$opt{quick},
    'only=s'      => \$opt{only},
    'out=s'       => \$opt{out},
    'chart=s'     => \$opt{chart},
    'build-dir=s' => \$opt{build_dir},
    'timeout=i'   => \$opt{timeout},
    'isolate!'    => \$opt{isolate},
    'probe=s'     => \$opt{probe},
    'help|h'      => sub { usage() },
) or usage();
usage('unexpected argument: ' . join(' ', @ARGV)) if @ARGV;
usage('--hive is required (use --hive none to run the peers only)') unless defined $opt{hive};
usage('--repeat must be at least 1') if $opt{repeat} < 1;

my @peers;
if ($opt{peers} ne 'none' && $opt{peers} ne '') {
    for my $p (split /,/, $opt{peers}) {
        usage("unknown peer: $p (known: @KNOWN_PEERS)") unless grep { $_ eq $p } @KNOWN_PEERS;
        push @peers, $p unless grep { $_ eq $p } @peers;
    }
}

my $hive;
if ($opt{hive} ne 'none') {
    $hive = abs_path($opt{hive});
    die "run.pl: hive-bench not found or not executable: $opt{hive}\n"
        unless defined $hive && -f $hive && -x $hive;
}
my $build_dir = File::Spec->rel2abs($opt{build_dir});

my $probe;
if (defined $opt{probe}) {
    $probe = $opt{probe} eq 'none' ? undef : abs_path($opt{probe});
    die "run.pl: probe not found or not executable: $opt{probe}\n"
        if $opt{probe} ne 'none' && !(defined $probe && -x $probe);
} elsif (defined $hive) {
    my $p = File::Spec->catfile(dirname($hive), 'c2c-probe');
    $probe = $p if -x $p;
}

# ---------------------------------------------------------------------
# helpers

sub which {
    my ($prog) = @_;
    for my $dir (split /:/, $ENV{PATH} // '') {
        my $p = File::Spec->catfile($dir eq '' ? '.' : $dir, $prog);
        return $p if -f $p && -x $p;
    }
    return undef;
}

sub note { print STDERR "run.pl: @_\n" }

# Run a command (list form, no shell) in $dir with extra environment;
# returns (exit status, combined output).
sub run_quiet {
    my ($dir, $env, @cmd) = @_;
    my $pid = open(my $fh, '-|');
    die "run.pl: fork: $!\n" unless defined $pid;
    if (!$pid) {
        open(STDERR, '>&', \*STDOUT);
        if (defined $dir) { chdir $dir or do { print "cannot chdir to $dir: $!\n"; exit 127 } }
        @ENV{ keys %$env } = values %$env;
        exec { $cmd[0] } @cmd or do { print "cannot run $cmd[0]: $!\n"; exit 127 };
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($?, $out);
}

sub first_line {
    my ($status, $out) = run_quiet(undef, {}, @_);
    return undef if $status != 0;
    my ($l) = split /\n/, $out;
    $l //= '';
    $l =~ s/^\s+|\s+$//g;
    return $l;
}

sub tail_lines {
    my ($text, $n) = @_;
    my @l = split /\n/, $text;
    @l = @l[-$n .. -1] if @l > $n;
    return join("\n", map { "    $_" } @l);
}

# ---------------------------------------------------------------------
# build the peers

my %peer_cmd;    # peer -> [command...]

sub build_erlang {
    my $erl  = which('erl');
    my $erlc = which('erlc');
    return note('skipping the erlang peer: erl/erlc not found') unless $erl && $erlc;
    my $dir = File::Spec->catdir($build_dir, 'erlang');
    make_path($dir);
    my $src = File::Spec->catfile($ROOT, 'bench', 'peers', 'erlang', 'hive_peer.erl');
    my ($st, $out) = run_quiet(undef, {}, $erlc, '-o', $dir, $src);
    return note("skipping the erlang peer: erlc failed:\n" . tail_lines($out, 20)) if $st != 0;
    $peer_cmd{erlang} = [$erl, '-noshell', '-pa', $dir, '+P', '4000000',
                         '-s', 'hive_peer', 'main', '-extra'];
}

sub build_go {
    my $go = which('go');
    return note('skipping the go peer: go not found') unless $go;
    my $dir = File::Spec->catdir($build_dir, 'go');
    make_path($dir);
    my $bin = File::Spec->catfile($dir, 'hive-peer-go');
    my %env = (
        GOFLAGS     => '-mod=mod',
        GOCACHE     => File::Spec->catdir($build_dir, 'go-cache'),
        GOPROXY     => 'off',
        GO111MODULE => 'on',
    );
    $env{GOPATH} = File::Spec->catdir($build_dir, 'gopath') unless $ENV{GOPATH} || $ENV{HOME};
    my ($st, $out) = run_quiet(File::Spec->catdir($ROOT, 'bench', 'peers', 'go'), \%env,
                               $go, 'build', '-o', $bin, '.');
    return note("skipping the go peer: go build failed:\n" . tail_lines($out, 20)) if $st != 0;
    $peer_cmd{go} = [$bin];
}

my %builders = (erlang => \&build_erlang, go => \&build_go);
$builders{$_}->() for @peers;

# ---------------------------------------------------------------------
# machine description and the raw result file

sub machine {
    my %m = (hostname => hostname());
    if (open(my $fh, '<', '/proc/cpuinfo')) {
        while (<$fh>) {
            if (/^model name\s*:\s*(.*?)\s*$/) { $m{cpu} = $1; last }
        }
        close $fh;
    }
    my $nproc = first_line('nproc');
    $m{cores}  = defined $nproc && $nproc =~ /^\d+$/ ? $nproc + 0 : undef;
    $m{kernel} = first_line('uname', '-r');
    $m{erlang} = undef;
    if (which('erl')) {
        $m{erlang} = first_line('erl', '-noshell', '-eval',
            'R = erlang:system_info(otp_release),'
          . ' F = filename:join([code:root_dir(), "releases", R, "OTP_VERSION"]),'
          . ' V = case file:read_file(F) of {ok, B} -> string:trim(B); _ -> R end,'
          . ' io:format("OTP ~s (erts ~s)~n", [V, erlang:system_info(version)]), halt().');
    }
    $m{go} = undef;
    if (which('go')) {
        my $v = first_line('go', 'version');
        $m{go} = defined $v && $v =~ /^go version (\S+)/ ? $1 : $v;
    }
    $m{date} = strftime('%Y-%m-%dT%H:%M:%S%z', localtime);
    return \%m;
}

my $JSON = JSON::PP->new->canonical(1);
my $machine = machine();

make_path($opt{out});
my $stem = strftime('%Y-%m-%d', localtime) . '-' . ($machine->{hostname} =~ s/[^\w.-]/_/gr);
my $raw_path = File::Spec->catfile($opt{out}, "$stem.jsonl");
for (my $i = 2; -e $raw_path; $i++) {
    $raw_path = File::Spec->catfile($opt{out}, "$stem-$i.jsonl");
}
open(my $RAW, '>', $raw_path) or die "run.pl: cannot write $raw_path: $!\n";
$RAW->autoflush(1);
print $RAW $JSON->encode({ machine => $machine }), "\n";

# ---------------------------------------------------------------------
# run every runtime

my @quick = $opt{quick} ? ('--quick') : ();

my @results;          # decoded lines, in arrival order
my %run_problem;      # runtime -> [why an invocation failed]

sub human_rate {
    my ($r) = @_;
    my ($v, $s) = $r >= 1e9 ? ($r / 1e9, 'G') : $r >= 1e6 ? ($r / 1e6, 'M')
                : $r >= 1e3 ? ($r / 1e3, 'k') : ($r, '');
    my $f = $v >= 100 ? '%.0f' : $v >= 10 ? '%.1f' : '%.2f';
    return sprintf($f, $v) . "$s/s";
}

# Runs one runtime's command, streaming its stdout; returns the exit
# status (-1 when it could not start or ran out of time).
# The kernel's count of every system call a run made (perf stat -e
# raw_syscalls:sys_enter around the whole process, start-up and teardown
# included), where perf can count it here.
my $PERF_OUT = File::Spec->catfile(File::Spec->tmpdir(), "hive-bench-perf-$$.txt");
my $have_perf = !system('sh', '-c',
    "perf stat -x, -e raw_syscalls:sys_enter -o '$PERF_OUT' -- true >/dev/null 2>&1");
note('perf cannot count raw_syscalls:sys_enter here: no kernel system-call counts')
    unless $have_perf;
END { unlink $PERF_OUT if defined $PERF_OUT }

sub perf_count {
    open(my $fh, '<', $PERF_OUT) or return undef;
    while (my $l = <$fh>) {
        return $1 if $l =~ /^(\d+),[^,]*,raw_syscalls:sys_enter/;
    }
    return undef;
}

# The core-to-core probe's reading (ns per cache-line transfer), or undef.
sub c2c_ns {
    return undef unless $probe;
    my ($st, $out) = run_quiet(undef, {}, $probe, '--json');
    return $st == 0 && $out =~ /"c2c_ns":([\d.]+)/ ? $1 + 0 : undef;
}

sub run_runtime {
    my ($name, $rep, @cmd) = @_;
    note("running $name: @cmd");
    my $c2c_before = c2c_ns();
    unlink $PERF_OUT;
    @cmd = ('perf', 'stat', '-x,', '-e', 'raw_syscalls:sys_enter', '-o', $PERF_OUT, '--', @cmd)
        if $have_perf;
    my @mine;
    my $pid = open(my $fh, '-|');
    if (!defined $pid) { push @{ $run_problem{$name} }, "fork: $!"; return -1 }
    if (!$pid) {
        exec { $cmd[0] } @cmd or do { print STDERR "run.pl: cannot run $cmd[0]: $!\n"; exit 127 };
    }
    my $lines = 0;
    my $timed_out = 0;
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm($opt{timeout}) if $opt{timeout} > 0;
        while (my $line = <$fh>) {
            chomp $line;
            next unless $line =~ /^\s*\{/;
            my $r = eval { decode_json($line) };
            next unless ref $r eq 'HASH' && defined $r->{bench} && defined $r->{runtime};
            push @mine, $r;
            $lines++;
            my $ok = $r->{ok} ? 'ok' : 'FAILED' . (defined $r->{error} ? ": $r->{error}" : '');
            printf STDERR "  %-7s %-22s %10s  %s\n", $r->{runtime}, $r->{bench},
                human_rate($r->{rate_per_s} // 0), $ok;
        }
        alarm(0);
        1;
    } or do {
        alarm(0);
        die $@ unless $@ eq "timeout\n";
        $timed_out = 1;
        kill 'TERM', $pid;
        for (1 .. 50) { last if waitpid($pid, WNOHANG) == $pid; select(undef, undef, undef, 0.1) }
        kill 'KILL', $pid;
    };
    close $fh;
    my $st = $?;
    # One run per process (the default): the kernel's count is that run's.
    my $k = $have_perf && @mine == 1 ? perf_count() : undef;
    if (defined $k) {
        $mine[0]{kernel_syscalls} = $k + 0;
        $mine[0]{kernel_syscalls_per_op} = $k / $mine[0]{n} if $mine[0]{n};
    }
    my $c2c_after = c2c_ns();
    for my $r (@mine) {
        $r->{rep} = $rep if defined $rep;
        $r->{c2c_ns_before} = $c2c_before if defined $c2c_before;
        $r->{c2c_ns_after} = $c2c_after if defined $c2c_after;
        print $RAW $JSON->encode($r), "\n";
        push @results, $r;
    }
    my $why = $timed_out ? "no result within $opt{timeout} s"
            : $st & 127    ? 'killed by signal ' . ($st & 127)
            : $st != 0     ? 'exit status ' . ($st >> 8)
            : $lines == 0  ? 'printed no result lines'
            :                undef;
    if (defined $why) {
        my @args = @cmd[(grep { $cmd[$_] =~ /^--/ } 0 .. $#cmd)[0] // scalar(@cmd) .. $#cmd];
        $why = "$why: " . join(' ', basename($cmd[0]), @args);
        note("$name: $why");
        push @{ $run_problem{$name} }, $why;
    }
    return $timed_out ? -1 : $st;
}

# The workload names a runtime knows, from CMD --list.
sub list_of {
    my (@cmd) = @_;
    my ($st, $out) = run_quiet(undef, {}, @cmd, '--list');
    return () if $st != 0;
    return map { /^\s*([a-z][a-z0-9_]*)(?:\s|$)/ ? ($1) : () } split /\n/, $out;
}

my @runtimes;
my @inv;    # [name, command...] of every runtime that runs
push @inv, ['hive', $hive] if defined $hive;
for my $p (@peers) {
    push @inv, [$p, @{ $peer_cmd{$p} }] if $peer_cmd{$p};
}
push @runtimes, map { $_->[0] } @inv;
if (!$opt{isolate}) {
    for my $i (@inv) {
        my ($name, @cmd) = @$i;
        run_runtime($name, undef, @cmd, '--json', '--repeat', $opt{repeat}, @quick,
                    defined $opt{only} ? ('--only', $opt{only}) : ());
    }
} else {
    # The workloads each runtime knows; the order is the first runtime's.
    my (%knows, @order);
    for my $i (@inv) {
        my ($name, @cmd) = @$i;
        my @names = defined $opt{only} ? (grep { $_ ne '' } split /,/, $opt{only}) : list_of(@cmd);
        if (!@names) {
            note("$name: --list gave no workload names; running the whole suite in one process");
            run_runtime($name, undef, @cmd, '--json', '--repeat', $opt{repeat}, @quick);
            next;
        }
        $knows{$name}{$_} = 1 for @names;
        for my $n (@names) { push @order, $n unless grep { $_ eq $n } @order }
    }
    for my $rep (1 .. $opt{repeat}) {
        for my $w (@order) {
            for my $i (@inv) {
                my ($name, @cmd) = @$i;
                next unless $knows{$name}{$w};
                run_runtime($name, $rep, @cmd, '--json', '--repeat', 1, @quick, '--only', $w);
            }
        }
    }
}
close $RAW;

# ---------------------------------------------------------------------
# the table

sub median {
    my @v = sort { $a <=> $b } grep { defined } @_;
    return undef unless @v;
    my $m = int(@v / 2);
    return @v % 2 ? $v[$m] : ($v[$m - 1] + $v[$m]) / 2;
}

my (@benches, %by);    # %by{bench}{runtime} = [records]
for my $r (@results) {
    push @benches, $r->{bench} unless $by{ $r->{bench} };
    push @{ $by{ $r->{bench} }{ $r->{runtime} } }, $r;
    push @runtimes, $r->{runtime} unless grep { $_ eq $r->{runtime} } @runtimes;
}
my @peer_rts = grep { $_ ne 'hive' } @runtimes;

# stat(bench, runtime, field): median over ok runs; 'FAILED' if any failed
sub failed { my ($b, $rt) = @_; return grep { !$_->{ok} } @{ $by{$b}{$rt} // [] } }
sub stat_of {
    my ($b, $rt, $field) = @_;
    my $runs = $by{$b}{$rt} or return undef;
    return median(map { $_->{$field} } grep { $_->{ok} } @$runs);
}

my @cols = ({ head => 'workload', cell => sub { $_[0] }, left => 1 });
for my $rt (@runtimes) {
    push @cols, { head => $rt, cell => sub {
        my ($b) = @_;
        return '' unless $by{$b}{$rt};
        return 'FAILED' if failed($b, $rt);
        my $v = stat_of($b, $rt, 'rate_per_s');
        return defined $v ? human_rate($v) : '';
    } };
}
my %ratio;    # bench -> peer -> hive/peer
if (grep { $_ eq 'hive' } @runtimes) {
    for my $p (@peer_rts) {
        push @cols, { head => "hive/$p", cell => sub {
            my ($b) = @_;
            return '' unless $by{$b}{hive} && $by{$b}{$p};
            return '-' if failed($b, 'hive') || failed($b, $p);
            my ($h, $o) = (stat_of($b, 'hive', 'rate_per_s'), stat_of($b, $p, 'rate_per_s'));
            return '-' unless $h && $o;
            my $x = $h / $o;
            $ratio{$b}{$p} = $x;
            return sprintf($x >= 1 ? '%.1fx' : '%.2fx', $x);
        } };
    }
}
# Per peer, hive's ratio in each repetition (the two runs of a workload
# made one after the other), as "lowest-highest": what "in every run"
# means, where the machine changes between repetitions.
sub rep_ratios {
    my ($w, $p) = @_;
    my %at;
    for my $rt ('hive', $p) {
        for my $r (grep { $_->{ok} && defined $_->{rep} } @{ $by{$w}{$rt} // [] }) {
            $at{ $r->{rep} }{$rt} = $r->{rate_per_s};
        }
    }
    return map { $at{$_}{hive} / $at{$_}{$p} }
           grep { $at{$_}{hive} && $at{$_}{$p} } sort { $a <=> $b } keys %at;
}
if ($opt{repeat} > 1 && grep { $_ eq 'hive' } @runtimes) {
    for my $p (@peer_rts) {
        push @cols, { head => "hive/$p per run", cell => sub {
            my @x = sort { $a <=> $b } rep_ratios($_[0], $p);
            return '' unless @x;
            my $f = sub { sprintf($_[0] >= 1 ? '%.1f' : '%.2f', $_[0]) };
            return $f->($x[0]) . '-' . $f->($x[-1]) . 'x';
        } };
    }
}
# The probe's readings around every run of a workload, all runtimes.
if (grep { defined $_->{c2c_ns_before} } @results) {
    push @cols, { head => 'c2c ns', cell => sub {
        my @v = sort { $a <=> $b } grep { defined }
                map { ($_->{c2c_ns_before}, $_->{c2c_ns_after}) }
                map { @{ $by{ $_[0] }{$_} // [] } } @runtimes;
        return '' unless @v;
        return sprintf('%.0f-%.0f', $v[0], $v[-1]);
    } };
}
sub any_field {
    my ($field, @rts) = @_;
    for my $b (@benches) { for my $rt (@rts) { for my $r (@{ $by{$b}{$rt} // [] }) {
        return 1 if defined $r->{$field};
    } } }
    return 0;
}
# One column per field, the runtimes' medians side by side: "a / b / c".
sub field_col {
    my ($field, $label, $fmt, @rts) = @_;
    @rts = grep { any_field($field, $_) } @rts;
    return unless @rts;
    my $head = @rts > 1 || $rts[0] ne 'hive' ? "$label " . join('/', @rts) : $label;
    push @cols, { head => $head, cell => sub {
        my ($b) = @_;
        my @v = map {
            my $v = failed($b, $_) ? undef : stat_of($b, $_, $field);
            !defined $v ? '-' : $fmt eq '%.5f' ? sprintf($fmt, $v) =~ s/\.?0+$//r : sprintf($fmt, $v);
        } @rts;
        return '' unless grep { $_ ne '-' } @v;
        return join(' / ', @v);
    } };
}
field_col('bytes_per_proc', 'bytes/proc', '%.0f', @runtimes);
field_col('p99_us', 'p99 us', '%.2f', @runtimes);
field_col('peak_rss_mb', 'peak MB', '%.1f', @runtimes);
field_col('syscalls_per_msg', 'syscalls/msg', '%.5f', 'hive');
field_col('kernel_syscalls_per_op', 'kernel syscalls/op', '%.5f', @runtimes);
if (any_field('leftover', @runtimes)) {
    push @cols, { head => 'leftover', left => 1, cell => sub {
        my ($b) = @_;
        my @parts;
        for my $rt (@runtimes) {
            my $v = stat_of($b, $rt, 'leftover');
            push @parts, "$rt=" . sprintf('%.0f', $v) if defined $v;
        }
        return join(' ', @parts);
    } };
}

print "\nno results\n" unless @benches;
my @rows = ([map { $_->{head} } @cols]);
for my $b (@benches) {
    push @rows, [map { $_->{cell}->($b) } @cols];
}
my @width = (0) x @cols;
for my $row (@rows) {
    for my $i (0 .. $#cols) { $width[$i] = length $row->[$i] if length $row->[$i] > $width[$i] }
}
my $what = $opt{repeat} > 1 ? "median of $opt{repeat} runs" : 'one run';
print "\nhive bench, $what" . ($opt{quick} ? ', quick sizes' : '') . "; rates per second, higher is better\n\n";
for my $ri (0 .. $#rows) {
    my $row = $rows[$ri];
    print join('  ', map {
        my $i = $_;
        $cols[$i]{left} ? sprintf("%-*s", $width[$i], $row->[$i]) : sprintf("%*s", $width[$i], $row->[$i])
    } 0 .. $#cols) =~ s/\s+$//r, "\n";
    print join('  ', map { '-' x $_ } @width), "\n" if $ri == 0;
}

my @failures;
for my $b (@benches) {
    for my $rt (@runtimes) {
        for my $r (failed($b, $rt)) {
            push @failures, sprintf('FAILED %s %s: %s', $rt, $b, $r->{error} // 'no error given');
        }
    }
}
print "\n", join("\n", @failures), "\n" if @failures;
for my $rt (@runtimes) {
    print "\n$rt did not run cleanly:\n", map { "  $_\n" } @{ $run_problem{$rt} } if $run_problem{$rt};
}
print "\nraw results: $raw_path\n";

# ---------------------------------------------------------------------
# the chart

if (defined $opt{chart}) {
    my $gnuplot = which('gnuplot');
    my @ratio_peers = grep { my $p = $_; grep { exists $ratio{$_}{$p} } @benches } @peer_rts;
    if (!$gnuplot) {
        note('no chart: gnuplot not found');
    } elsif (!@ratio_peers) {
        note('no chart: no ratio of hive to a peer to draw');
    } else {
        my $svg = File::Spec->rel2abs($opt{chart});
        make_path(dirname($svg));
        my $dat = $svg =~ s/\.svg$//r . '.dat';
        open(my $fh, '>', $dat) or die "run.pl: cannot write $dat: $!\n";
        print $fh join(' ', 'workload', map { "\"hive/$_\"" } @ratio_peers), "\n";
        my @all = (1);
        for my $b (@benches) {
            my @v = map { $ratio{$b}{$_} } @ratio_peers;
            push @all, grep { defined } @v;
            print $fh join(' ', $b, map { defined $_ ? sprintf('%.4g', $_) : '?' } @v), "\n";
        }
        close $fh;
        my ($lo, $hi) = (1, 1);
        for (@all) { $lo = $_ if $_ < $lo; $hi = $_ if $_ > $hi }
        my $title = "hive vs peers on " . ($machine->{cpu} // 'this machine')
                  . ", $machine->{cores} cores" . ($opt{quick} ? ' (quick sizes)' : '');
        $title =~ s/["\\]//g;
        my $e = sprintf('datafile="%s"; outfile="%s"; npeers=%d; nrows=%d; ymin=%g; ymax=%g; charttitle="%s"',
                        $dat, $svg, scalar @ratio_peers, scalar @benches, $lo / 1.6, $hi * 1.6, $title);
        my ($st, $out) = run_quiet(undef, {}, $gnuplot, '-e', $e,
                                   File::Spec->catfile($ROOT, 'bench', 'chart.gp'));
        if ($st != 0) {
            note("gnuplot failed:\n" . tail_lines($out, 20));
        } else {
            print "chart: $svg (data: $dat)\n";
        }
    }
}

# ---------------------------------------------------------------------
# exit status: only hive's own failures count

if (defined $hive) {
    my $bad = $run_problem{hive} ? 1 : 0;
    $bad ||= grep { $_->{runtime} eq 'hive' && !$_->{ok} } @results;
    exit($bad ? 1 : 0);
}
exit 0;
