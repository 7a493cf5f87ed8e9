"""The benchmark behind ``scripts/bench``: amq-bridge against plain JMS and plain stomp.py.

cli.py        options, the order of runs, the report
consumers.py  the six consumers and one measured run of each
sinkwatch.py  when events reach the bridge's sink, seen from outside (inotify)
procs.py      child processes: broker, consumers, producer; peak RSS; javac
report.py     the markdown: machine, command line, table
JmsBench.java the plain Java JMS consumer and the producer; stomp_consumer.py the plain stomp.py one
"""
