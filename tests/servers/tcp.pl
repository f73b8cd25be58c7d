#!/usr/bin/perl
# A tiny TCP client for the server tests; see tcp() in lib.sh.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(sleep time);

my ($host, $port, @pieces) = @ARGV;
my $gap = 0;
while (@pieces && $pieces[0] =~ /^--/) {
    my $o = shift @pieces;
    if ($o eq '--gap') { $gap = shift(@pieces) / 1000 }
    else { die "tcp.pl: unknown option $o\n" }
}
my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Proto => 'tcp', Timeout => 5)
    or die "tcp.pl: connect $host:$port: $!\n";
setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
binmode $s;
for my $i (0 .. $#pieces) {
    my $d = $pieces[$i];
    if ($d =~ /^@(.+)/) { # a file's bytes, as they are
        open(my $f, '<:raw', $1) or die "tcp.pl: $1: $!\n";
        local $/;
        $d = <$f>;
        syswrite($s, $d) == length($d) or die "tcp.pl: write: $!\n";
        sleep $gap if $gap && $i < $#pieces;
        next;
    }
    $d =~ s/\\r/\r/g; $d =~ s/\\n/\n/g; $d =~ s/\\t/\t/g;
    $d =~ s/\\x([0-9a-fA-F]{2})/chr(hex $1)/ge;
    syswrite($s, $d) == length($d) or die "tcp.pl: write: $!\n";
    sleep $gap if $gap && $i < $#pieces;
}
shutdown($s, 1);
my $sel = IO::Select->new($s);
my $out = '';
my $end = time + 5;
while (time < $end) {
    last unless $sel->can_read($end - time);
    my $n = sysread($s, my $buf, 65536);
    last unless $n;
    $out .= $buf;
}
binmode STDOUT;
print $out;
