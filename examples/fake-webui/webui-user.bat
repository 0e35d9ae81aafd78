@echo off
rem Fake WebUI user settings, like AUTOMATIC1111's webui-user.bat.
rem launch.py appends COMMANDLINE_ARGS to its own arguments.

set PYTHON=
set COMMANDLINE_ARGS=--workers 2

call "%~dp0webui.bat" %*
exit /b %ERRORLEVEL%
