from vpcnet import quiet_eventlet_warning

quiet_eventlet_warning()
